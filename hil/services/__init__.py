"""Rig-side network services for the suites: real NTP, DNS and HTTP(S) servers on the rig's host.

Each is a context manager around a real server (Debian's chronyd and dnsmasq, Python's http.server with
ssl) listening on 127.0.0.1 on a free port; it is stopped and its files removed on exit. The DUT reaches
them through the rig's network: on QEMU user networking (slirp) the host's loopback is 10.0.2.2 for the
guest, UDP included.

Why user networking and not a TAP device in a network namespace with dnsmasq serving DHCP and DNS (as
balena's QEMU worker does): it needs no root, so CI agents and parallel boards on one host each get a
private network and free ports without touching the host's; the price is that the rig does not run the
DHCP server, so the DHCP hostname is read from a capture of the board's traffic instead of a server log.
A TAP mode would suit a lab machine running as root.
"""
