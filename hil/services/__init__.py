"""Rig-side network services for the suites: real NTP, DNS and HTTP(S) servers on the rig's host.

Each is a context manager around a real server (Debian's chronyd and dnsmasq, Python's http.server with
ssl) listening on 127.0.0.1 on a free port; it is stopped and its files removed on exit. The DUT reaches
them through the rig's network: on QEMU user networking (slirp) the host's loopback is 10.0.2.2 for
the guest, UDP included.
"""
