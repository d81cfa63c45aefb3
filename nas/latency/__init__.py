"""Latency: device profiles, measurement, per-unit lookup tables, the calibrated predictor, validation.

    profile.py    DeviceProfile (cpu | cuda | onnxruntime-cpu; threads, batch, dtype, channels_last), fingerprint
    measure.py    measure / measure_many: warm-up, interleaved rounds, medians; drift correction
    units.py      Unit: one module of a network at its real input shape (what the table is keyed by)
    decoder_units.py  a dense-prediction decoder's units: laterals, context, fusion, upsampling, classifier
    table.py      LatencyTable: built incrementally, saved atomically, refuses another machine's table
    predictor.py  LatencyModel.predict(arch), Calibration, fit_calibration
    validate.py   end-to-end check: MAPE, ±5/±10%, Kendall tau, beside a MACs proxy
    stage.py      the search's latency stage (spec hardware: -> LatencyModel)
"""
from nas.latency import decoder_units  # noqa: E402,F401  (registers the segmentation head's units)
