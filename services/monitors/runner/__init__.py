"""The monitors' process: reads ledger windows, runs the calculators, stores and publishes findings."""
