# The host end of the virtio-net test: on tap device argv[1] (inside the test's network
# namespace), waits for the guest's frame of ethertype 0x88b5, prints its payload and
# source MAC once, and answers every such frame with "berth-host frame" until the guest
# has been quiet for 2 s (the guest resends until it hears an answer).
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind((sys.argv[1], 0))
s.settimeout(60)
print("ready", flush=True)
heard = False
while True:
    try:
        f = s.recv(2048)
    except socket.timeout:
        break
    if f[12:14] != b"\x88\xb5":
        continue
    if not heard:
        print("got", f[14:31].decode(errors="replace"), "from", f[6:12].hex(":"), flush=True)
        heard = True
        s.settimeout(2)
    reply = f[6:12] + bytes.fromhex("0abe47000099") + b"\x88\xb5" + b"berth-host frame" + bytes(30)
    s.send(reply)
