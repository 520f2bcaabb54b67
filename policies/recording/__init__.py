"""Recording scripted-expert demonstrations as a LeRobot dataset: ``vla-record``, its worker, its settings."""
