"""Model-agnostic serving: the Predictor contract, deployment specs, and adapters for Ray Serve and Triton."""
