"""Running a policy on a robot: the ``Robot`` protocol, robots, the safety layer and the control loop."""
