"""Training data for the user's Roboflow dataset (#20): building blocks, wired by the agent later."""
