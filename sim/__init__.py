"""A seeded hospital simulator: chest radiographs with ground truth, for testing what radguard must detect.

No public X-ray data is reachable here, so radguard brings its own hospital. Images are chest-radiograph-like
(lungs, mediastinum, spine, ribs, soft tissue, texture) with nodule-like lesions in the positives; sites and
scanners add their acquisition effects; patients have sex and age with configurable prevalence; radiologists
read with configurable accuracy and delay. Scenarios (YAML, shipped in ``sim/scenarios``) change the hospital
over time and say which ground-truth change they plant, so each monitor can be tested against a known answer.

Usage::

    from sim import Hospital, intensity_descriptors, to_dicom, from_dicom

    hospital = Hospital("new_scanner", seed=7)        # or a Scenario, or a path to a YAML file
    batch = hospital.studies(1000)                     # images (1000, 1, 128, 128) float32 + Study records
    study = batch.studies[0]
    study.label, study.lesion, study.site_id, study.acquired_at
    descriptors = intensity_descriptors(batch.images)  # mean, std, p5, p50, p95, skewness per image
    read = hospital.read(study, model_decision=1)      # reported label, agree/override/correct, read time
    image, meta = from_dicom(to_dicom(study))          # DICOM Part-10 round trip
    for study in hospital.iter_studies(10_000, start_index=2_000, batch_size=500):
        ...

Determinism: study ``i`` depends only on (seed, i) and the scenario, so ``studies(n, start_index)``
returns the same studies however the range is split, the same seed gives identical bytes, and two
scenarios that differ in one aspect produce the same patients (a paired comparison). Shipped scenarios:
``baseline``, ``new_scanner``, ``intensity_drift``, ``prevalence_shift``, ``subgroup_degradation`` (see
``available_scenarios()``); each YAML's ``planted`` field states the change. Intensity shifts are expressed
in SDs of the per-image mean intensity (``mean_intensity_sd``).
"""

from sim.descriptors import DESCRIPTOR_NAMES, IntensityDescriptors, intensity_descriptors
from sim.dicom import DicomMetadata, from_dicom, to_dicom
from sim.hospital import Hospital
from sim.lesions import Lesion
from sim.loader import ScenarioError, available_scenarios, load_scenario, scenario_from_mapping
from sim.reads import Read, ReadOutcome, read_study
from sim.scanners import mean_intensity_sd
from sim.specs import (
    AgeBand,
    IntensityDrift,
    LesionModifier,
    LesionSpec,
    Phase,
    Population,
    Prevalence,
    Reader,
    Scanner,
    ScannerChange,
    Scenario,
    Site,
)
from sim.study import Study, StudyBatch

__all__ = [
    "DESCRIPTOR_NAMES",
    "AgeBand",
    "DicomMetadata",
    "Hospital",
    "IntensityDescriptors",
    "IntensityDrift",
    "Lesion",
    "LesionModifier",
    "LesionSpec",
    "Phase",
    "Population",
    "Prevalence",
    "Read",
    "ReadOutcome",
    "Reader",
    "Scanner",
    "ScannerChange",
    "Scenario",
    "ScenarioError",
    "Site",
    "Study",
    "StudyBatch",
    "available_scenarios",
    "from_dicom",
    "intensity_descriptors",
    "load_scenario",
    "mean_intensity_sd",
    "read_study",
    "scenario_from_mapping",
    "to_dicom",
]
