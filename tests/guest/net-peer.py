# The host end of the virtio-net test: on tap device argv[1] (inside the test's network
# namespace), waits for the guest's frame of ethertype 0x88b5, prints its payload and
# source MAC, and answers the sender with "berth-host frame".
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind((sys.argv[1], 0))
s.settimeout(30)
print("ready", flush=True)
while True:
    f = s.recv(2048)
    if f[12:14] == b"\x88\xb5":
        break
print("got", f[14:31].decode(errors="replace"), "from", f[6:12].hex(":"), flush=True)
reply = f[6:12] + bytes.fromhex("0abe47000099") + b"\x88\xb5" + b"berth-host frame" + bytes(30)
s.send(reply)
