"""The inference gateway: hospital systems' front door over Triton.

It validates the request, routes it (stable / canary / shadow) by the model's route table,
asks Triton, calibrates the answer, pseudonymises the patient and records the prediction.
"""
