"""policies: the composition layer: the policy interface, rollouts, evaluation, reports and recording."""
