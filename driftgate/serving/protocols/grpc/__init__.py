"""The Open Inference Protocol (KServe V2) over gRPC: the service definition and its codec.

`grpc_predict_v2.proto` defines the messages (wire-compatible with KServe's and Triton's, see the
comment at its top for why its protobuf package is `driftgate.inference`); `grpc_predict_v2_pb2.py`
is generated from it by grpcio-tools. `codec.py` turns messages into the data plane's
`DecodedRequest` and results back into messages, through the same tensor functions as the REST V2
codec (`driftgate/serving/protocols/v2/`). The server itself (auth, limits, status codes) is
`driftgate/api/grpc_server.py`.
"""
