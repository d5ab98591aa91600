#!/usr/bin/env python3
"""tools/tls_ec_table.py - print http/tls_ec_table.h, the fixed table of
P-256 generator multiples that http/tls_ec.c's mulgen() reads.

Entry i (1..15) is the affine point sum over the bits j of i of
2^(64 j) G (a Lim-Lee comb with four teeth 64 bits apart); X then Y,
each in Montgomery form (times 2^256 mod p), four 64-bit limbs, least
significant first. Run: python3 tools/tls_ec_table.py > http/tls_ec_table.h
(the tests check every entry against BearSSL's own P-256 code).
"""

P = 2**256 - 2**224 + 2**192 + 2**96 - 1
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def add(p1, p2):
    """Affine addition (None: the point at infinity), a = -3."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 - 3) * pow(2 * y1, P - 2, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, P - 2, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return (x3, (lam * (x1 - x3) - y1) % P)


def mul(k, pt):
    acc = None
    while k:
        if k & 1:
            acc = add(acc, pt)
        pt = add(pt, pt)
        k >>= 1
    return acc


def limbs(v):
    m = v * 2**256 % P
    return ["0x%016x" % ((m >> (64 * i)) & (2**64 - 1)) for i in range(4)]


def main():
    teeth = [mul(2 ** (64 * j), (GX, GY)) for j in range(4)]
    print("/*")
    print(" * http/tls_ec_table.h - made by tools/tls_ec_table.py, do not edit:")
    print(" * P256_COMB[i - 1] = sum over the bits j of i of 2^(64 j) G, affine,")
    print(" * X and Y in Montgomery form (see tls_ec.c, ferry__p256_mulgen).")
    print(" */")
    print("static const uint64_t P256_COMB[15][8] = {")
    for i in range(1, 16):
        pt = None
        for j in range(4):
            if i >> j & 1:
                pt = add(pt, teeth[j])
        ls = limbs(pt[0]) + limbs(pt[1])
        print("\t{ %s, %s, %s, %s,\n\t  %s, %s, %s, %s }," % tuple(ls))
    print("};")


main()
