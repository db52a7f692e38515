"""Request decoders and response encoders: native, MLflow scoring and Open Inference Protocol V2."""
