"""Shared contract vocabulary: study, patient, acquisition, model, arm, event envelope, route table."""
