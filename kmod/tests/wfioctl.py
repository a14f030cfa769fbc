#!/usr/bin/env python3
"""Raw WASMFW_IOC_LOAD / UNLOAD on /dev/wasmfw (wasmfw_uapi.h), bypassing the
wasmfw CLI's own checks, so the module's refusal is what gets tested.

    wfioctl.py load FILE.wasm [fuel]   prints "id <n> stack <bytes>" or "errno <e> <err text>"
    wfioctl.py unload ID
"""
import ctypes, fcntl, os, struct, sys

def ioc(d, nr, size):
    return (d << 30) | (size << 16) | (0xF7 << 8) | nr

LOAD_FMT = "=QQIIQQII32s128sQII"  # struct wasmfw_load, 224 bytes
assert struct.calcsize(LOAD_FMT) == 224
IOC_LOAD = ioc(3, 1, 224)
IOC_UNLOAD = ioc(1, 4, 8)

def main():
    fd = os.open("/dev/wasmfw", os.O_RDWR)
    if sys.argv[1] == "load":
        wasm = open(sys.argv[2], "rb").read()
        fuel = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
        wbuf = ctypes.create_string_buffer(wasm, len(wasm) or 1)
        ebuf = ctypes.create_string_buffer(256)
        req = bytearray(struct.pack(LOAD_FMT, ctypes.addressof(wbuf), 0, len(wasm), 0, fuel, 131072, 0, 0,
                                    b"raw", b"", ctypes.addressof(ebuf), 256, 0))
        try:
            fcntl.ioctl(fd, IOC_LOAD, req)
        except OSError as e:
            print("errno", e.errno, ebuf.value.decode(errors="replace"))
            return
        f = struct.unpack(LOAD_FMT, req)
        print("id", f[7], "stack", f[12])
    elif sys.argv[1] == "unload":
        fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", int(sys.argv[2]), 0))
        print("unloaded")

main()
