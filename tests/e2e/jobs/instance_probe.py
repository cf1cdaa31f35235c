"""A training script for the multi-node tests: reports what one instance sees of the cluster.

Prints (one fact per line, prefixed "probe:" so tests can pick them out of the job's log):
who it is (SM_CURRENT_HOST, the UTS host name, rank), every host's address as /etc/hosts
resolves it, its interface, the files of each channel, and whether it reached the others:
algo-1 listens on SM_MASTER_PORT and every other instance connects and says its name. Then it
writes /opt/ml/model/<host>.txt and a /opt/ml/model/common.txt every instance writes (the
merge keeps algo-1's), and sleeps or fails as asked.

usage: instance_probe.py [--fail-on HOST] [--sleep SECONDS] [--no-rendezvous]
"""
import argparse
import json
import os
import socket
import sys
import time


def log(*parts):
    print("probe:", *parts, flush=True)


def rendezvous(hosts, current, port):
    if len(hosts) < 2:
        return
    if current == hosts[0]:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(len(hosts))
        srv.settimeout(60)
        heard = []
        while len(heard) < len(hosts) - 1:
            conn, addr = srv.accept()
            with conn:
                name = conn.recv(64).decode()
                heard.append(name)
                log(f"{current} heard from {name} at {addr[0]}")
        srv.close()
        return
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection((hosts[0], port), timeout=2) as c:
                c.sendall(current.encode())
            log(f"{current} reached {hosts[0]}")
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fail-on", default="")
    ap.add_argument("--sleep", type=float, default=0)
    ap.add_argument("--no-rendezvous", action="store_true")
    args, _ = ap.parse_known_args()

    hosts = json.loads(os.environ["SM_HOSTS"])
    current = os.environ["SM_CURRENT_HOST"]
    with open("/opt/ml/input/config/resourceconfig.json") as f:
        rc = json.load(f)
    log("current", current, "hostname", socket.gethostname(), "rank",
        os.environ.get("SM_CURRENT_HOST_RANK"), "of", os.environ.get("SM_HOST_COUNT"))
    log("resourceconfig", json.dumps(rc, sort_keys=True))
    log("interface", os.environ.get("SM_NETWORK_INTERFACE_NAME"), "master",
        os.environ.get("SM_MASTER_ADDR"), os.environ.get("SM_MASTER_PORT"))
    for h in hosts:
        log("resolves", h, socket.gethostbyname(h))
    data = os.environ.get("SM_INPUT_DATA_DIR", "/opt/ml/input/data")
    for ch in sorted(json.loads(os.environ.get("SM_CHANNELS", "[]"))):
        files = sorted(os.listdir(os.path.join(data, ch)))
        log("channel", ch, json.dumps(files))

    if not args.no_rendezvous:
        rendezvous(hosts, current, int(os.environ.get("SM_MASTER_PORT", "7777")))

    model = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    with open(os.path.join(model, f"{current}.txt"), "w") as f:
        f.write(current + "\n")
    with open(os.path.join(model, "common.txt"), "w") as f:
        f.write(current + "\n")

    if current == args.fail_on:
        log(current, "failing on purpose")
        sys.exit(3)
    if args.sleep:
        log(current, "sleeping", args.sleep)
        time.sleep(args.sleep)
    log(current, "done")


if __name__ == "__main__":
    main()
