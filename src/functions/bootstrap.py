"""Trainyard's Python runtime for Lambda functions: the stdlib-only counterpart of awslambdaric.

It runs inside a function's sandbox, imports the handler once (_HANDLER "module.function" under
LAMBDA_TASK_ROOT), then loops on the Lambda Runtime API 2018-06-01 served by Trainyard at
AWS_LAMBDA_RUNTIME_API: GET next, call the handler with the event and a context object, POST the
result (or the error). Requests carry the worker's token (Trainyard-Worker-Token), which tells
the server which worker asks.

Every botocore client made in this process is pointed at Trainyard (TRAINYARD_ENDPOINT_URL) when
the caller gave no endpoint_url: botocore 1.29 (Debian's boto3 1.26) ignores AWS_ENDPOINT_URL,
so the runtime patches botocore.session.Session.create_client when botocore is first imported.
"""

import http.client
import importlib
import importlib.abc
import importlib.util
import json
import logging
import os
import sys
import time
import traceback

RUNTIME_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
TOKEN = os.environ.pop("TRAINYARD_RUNTIME_TOKEN", "")
ENDPOINT_URL = os.environ.pop("TRAINYARD_ENDPOINT_URL", "")
BASE = "/2018-06-01/runtime"


class _Api:
    def __init__(self, address):
        host, _, port = address.partition(":")
        self.host, self.port = host, int(port or 80)
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        hdrs = {"Trainyard-Worker-Token": TOKEN}
        hdrs.update(headers or {})
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port)
                self.conn.request(method, BASE + path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                return resp.status, dict(resp.getheaders()), resp.read()
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 1:
                    raise
                time.sleep(0.05)


class _BotocoreEndpointPatch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Wraps botocore.session's create_client as the module is imported (no import cost if the
    function never uses botocore)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "botocore.session" or not ENDPOINT_URL:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        inner = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, s):
                return inner.create_module(s)

            def exec_module(self, module):
                inner.exec_module(module)
                original = module.Session.create_client

                def create_client(self, service_name, *args, **kwargs):
                    # endpoint_url is create_client's 5th positional parameter
                    # (service_name, region_name, api_version, use_ssl, verify, endpoint_url).
                    if len(args) < 5 and kwargs.get("endpoint_url") is None:
                        kwargs["endpoint_url"] = ENDPOINT_URL
                    return original(self, service_name, *args, **kwargs)

                module.Session.create_client = create_client

        spec.loader = Loader()
        return spec


class _Identity:
    def __init__(self):
        self.cognito_identity_id = None
        self.cognito_identity_pool_id = None


class _ClientContext:
    def __init__(self, raw):
        self.client = raw.get("client")
        self.custom = raw.get("custom")
        self.env = raw.get("env")


class LambdaContext:
    def __init__(self, request_id, deadline_ms, invoked_arn, client_context):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = _Identity()
        self.client_context = _ClientContext(client_context) if client_context else None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return ("LambdaContext([aws_request_id=%s,function_name=%s,function_version=%s,"
                "invoked_function_arn=%s])" % (self.aws_request_id, self.function_name,
                                               self.function_version, self.invoked_function_arn))


class _RequestIdFilter(logging.Filter):
    request_id = None

    def filter(self, record):
        record.aws_request_id = _RequestIdFilter.request_id
        return True


def _setup_logging():
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S"))
    handler.formatter.converter = time.gmtime
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper())


def _error(exc, error_type=None, message=None):
    frames = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in frames if not f.filename.endswith("bootstrap.py")]
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(frames),
    }


def _log_error(err):
    lines = "".join(err.get("stackTrace", []))
    sys.stdout.write("[ERROR] %s: %s\rTraceback (most recent call last):\r%s\n" % (
        err["errorType"], err["errorMessage"], lines.replace("\n", "\r")))


def _load_handler(api, spec):
    try:
        module_name, func_name = spec.rsplit(".", 1)
    except ValueError:
        return None, {"errorMessage": "Bad handler '%s': not enough values to unpack "
                                      "(expected 2, got 1)" % spec,
                      "errorType": "Runtime.MalformedHandlerName", "stackTrace": []}
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except SyntaxError as e:
        err = _error(e, "Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (
            module_name, e))
        return None, err
    except Exception as e:  # noqa: BLE001 -- any import failure is the user's
        err = _error(e, "Runtime.ImportModuleError", "Unable to import module '%s': %s" % (
            module_name, e))
        return None, err
    handler = getattr(module, func_name, None)
    if handler is None:
        return None, {"errorMessage": "Handler '%s' missing on module '%s'" % (
            func_name, module_name), "errorType": "Runtime.HandlerNotFound", "stackTrace": []}
    return handler, None


def main():
    sys.meta_path.insert(0, _BotocoreEndpointPatch())
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    sys.path.insert(0, task_root)
    try:
        os.chdir(task_root)
    except OSError:
        pass
    _setup_logging()
    runtime = os.environ.get("AWS_EXECUTION_ENV", "").replace("AWS_Lambda_", "")
    sys.stdout.write("trainyard: runtime %s is served by %s (Python %s)\n" % (
        runtime, sys.executable, sys.version.split()[0]))
    api = _Api(RUNTIME_API)
    handler, err = _load_handler(api, os.environ.get("_HANDLER", ""))
    if err is not None:
        _log_error(err)
        api.request("POST", "/init/error", json.dumps(err).encode(),
                    {"Lambda-Runtime-Function-Error-Type": err["errorType"]})
        sys.exit(1)
    while True:
        status, headers, body = api.request("GET", "/invocation/next")
        if status != 200:
            sys.exit(0)  # the worker is retired
        h = {k.lower(): v for k, v in headers.items()}
        request_id = h.get("lambda-runtime-aws-request-id", "")
        trace = h.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        client_context = None
        if h.get("lambda-runtime-client-context"):
            try:
                client_context = json.loads(h["lambda-runtime-client-context"])
            except ValueError:
                client_context = None
        context = LambdaContext(request_id, int(h.get("lambda-runtime-deadline-ms", "0")),
                                h.get("lambda-runtime-invoked-function-arn"), client_context)
        _RequestIdFilter.request_id = request_id
        try:
            event = json.loads(body) if body else None
            result = handler(event, context)
            payload = json.dumps(result).encode()
        except Exception as e:  # noqa: BLE001 -- the handler's error goes back to the caller
            err = _error(e)
            err["requestId"] = request_id
            _log_error(err)
            api.request("POST", "/invocation/%s/error" % request_id, json.dumps(err).encode(),
                        {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        api.request("POST", "/invocation/%s/response" % request_id, payload)


if __name__ == "__main__":
    main()
