#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ProxyCommand wrapper that flips one bit of the client-to-server stream.

Usage: ssh_flip.py OFFSET CMD...  Relays stdin to CMD and CMD's stdout back,
inverting the lowest bit of byte number OFFSET of stdin on the way.
"""
import os
import subprocess
import sys
import threading


def main():
    off = int(sys.argv[1])
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def down():
        while True:
            d = os.read(p.stdout.fileno(), 65536)
            if not d:
                break
            os.write(1, d)
        os._exit(0)
    threading.Thread(target=down, daemon=True).start()
    seen = 0
    try:
        while True:
            d = os.read(0, 65536)
            if not d:
                break
            if seen <= off < seen + len(d):
                b = bytearray(d)
                b[off - seen] ^= 1
                d = bytes(b)
            seen += len(d)
            p.stdin.write(d)
            p.stdin.flush()
        p.stdin.close()
    except BrokenPipeError:
        pass
    p.wait()
    os._exit(0)


main()
