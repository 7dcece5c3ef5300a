#!/usr/bin/python3
"""A gRPC echo service and client for the proxy's gRPC tests (Debian's python3-grpcio; run with /usr/bin/python3).

Messages are raw bytes (no .proto): every call of the four kinds on service test.Echo.

  grpc_echo.py serve                      prints the port it listens on (127.0.0.1), then serves
  grpc_echo.py call TARGET AUTHORITY      runs every call kind through TARGET (host:port) with :authority
                                          AUTHORITY and prints one JSON object with what came back
"""
import concurrent.futures
import json
import sys
import time

import grpc

SERVICE = "test.Echo"


def unary(request, context):
    if request == b"fail":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    seen = dict(context.invocation_metadata())
    context.set_trailing_metadata((("x-echo-trailer", "yes"),
                                   ("x-saw-requestid", "yes" if "x-amzn-requestid" in seen else "no")))
    return b"unary:" + request


def slow(request, context):
    time.sleep(2)
    return request


def server_stream(request, context):
    for i in range(3):
        yield request + b":%d" % i


def client_stream(requests, context):
    return b"+".join(requests)


def bidi(requests, context):
    for message in requests:
        yield b"bidi:" + message


def serve():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def call(target, authority):
    options = [("grpc.default_authority", authority)] if authority else []
    channel = grpc.insecure_channel(target, options=options)
    method = lambda kind, name: getattr(channel, kind)("/%s/%s" % (SERVICE, name))
    out = {}
    value, info = method("unary_unary", "Unary").with_call(b"hi", timeout=10)
    out["unary"] = value.decode()
    out["unaryTrailers"] = {k: v for k, v in info.trailing_metadata()}
    try:
        method("unary_unary", "Unary")(b"fail", timeout=10)
        out["fail"] = "OK"
    except grpc.RpcError as e:
        out["fail"] = e.code().name
        out["failMessage"] = e.details()
    try:
        method("unary_unary", "Slow")(b"x", timeout=0.5)
        out["deadline"] = "OK"
    except grpc.RpcError as e:
        out["deadline"] = e.code().name
    out["serverStream"] = [m.decode() for m in method("unary_stream", "ServerStream")(b"s", timeout=10)]
    out["clientStream"] = method("stream_unary", "ClientStream")(iter([b"a", b"b", b"c"]), timeout=10).decode()
    out["bidi"] = [m.decode() for m in method("stream_stream", "Bidi")(iter([b"x", b"y"]), timeout=10)]
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
