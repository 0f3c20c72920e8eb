"""The Lightning plugin: ``RectifiedLawCallback`` and ``NestedSubsetDataModule``, the subset runs behind them
(fresh Trainers, the state restored between runs, the checks made before any training), the resume cache and
its fingerprint, logging through the user's loggers, the console, and the in-process adaptive sweep.

Imports Lightning and the layers below (core, selection, schedule); never Hydra."""
