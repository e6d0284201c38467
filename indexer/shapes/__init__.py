"""The synthetic shapes domain: off the core path, for the demo, tests and benchmarks.

- :mod:`indexer.shapes.synthetic` draws scenes of coloured shapes with their captions;
- :mod:`indexer.shapes.train` trains ``anyshot-tiny`` on them (a script);
- ``anyshot-tiny/`` is that model, shipped in open_clip's ``local-dir:`` layout.

No core module imports the generator or the training script (a ``lint-imports`` contract);
:mod:`indexer.weights` only finds the model folder, as a resource of this package.
"""
