# SPDX-License-Identifier: BSD-3-Clause
"""What the kernel stores but the data plane will not run is refused with the
kernel's own errno and message for an unknown algorithm or type, and nothing
is stored. (The kernel is no reference here: it accepts these.)"""
import pytest

K16 = "0x00112233445566778899aabbccddeeff"
K20 = K16 + "a0a1a2a3"
K24 = K16 + "0011223344556677"
ADD = "ip xfrm state add src 10.0.0.1 dst 10.0.0.2 proto %s spi 0x%x mode %s %s"

REFUSED = [
    ("esp", "tunnel", "enc des3_ede %s auth sha1 %s" % (K24, K20),
     "Error: Requested CRYPT algorithm not found."),
    ("esp", "tunnel", "enc 'cbc(camellia)' %s auth sha1 %s" % (K16, K20),
     "Error: Requested CRYPT algorithm not found."),
    ("esp", "tunnel", "enc aes %s auth md5 %s" % (K16, K16),
     "Error: Requested AUTH algorithm not found."),
    ("esp", "tunnel", "enc aes %s auth-trunc 'xcbc(aes)' %s 96" % (K16, K16),
     "Error: Requested AUTH_TRUNC algorithm not found."),
    ("esp", "tunnel", "aead 'rfc4309(ccm(aes))' 0x%s 128" % ("11" * 19),
     "Error: Requested AEAD algorithm not found."),
    ("esp", "tunnel", "aead 'rfc4543(gcm(aes))' %s 128" % K20,
     "Error: Requested AEAD algorithm not found."),
    ("esp", "beet", "aead 'rfc4106(gcm(aes))' %s 128" % K20,
     "Error: Requested mode not found."),
    ("ah", "tunnel", "auth sha1 %s" % K20, "Error: Requested type not found."),
    ("comp", "tunnel", "comp deflate", "Error: Requested COMP algorithm not found."),
    ("esp", "tunnel", "aead 'rfc4106(gcm(aes))' %s 128 encap espinudp-nonike 4500 4500 0.0.0.0"
     % K20, "Error: Unsupported encapsulation type for ESP."),
]


@pytest.mark.parametrize("proto,mode,algs,error", REFUSED)
def test_refused_and_not_stored(daemon, proto, mode, algs, error):
    rc, out, err = daemon.sh(ADD % (proto, 0x1234, mode, algs))
    assert rc == 2 and err.strip() == error
    rc, out, err = daemon.sh("ip xfrm state list; ip xfrm state count")
    assert out.strip() == "SAD count 0"
    # Still serving: a supported SA goes in right after.
    rc, out, err = daemon.sh(ADD % ("esp", 0x1235, "tunnel",
                                    "aead 'rfc4106(gcm(aes))' %s 128" % K20))
    assert rc == 0, err
