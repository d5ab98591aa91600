#!/bin/sh
# certs.sh DIR [STAMP] - make the TLS test certificates in DIR with the
# openssl CLI, then touch STAMP (for meson's custom_target) if given.
#
#   ca.pem ca.key              private root CA (ECDSA P-256)
#   leaf.pem leaf.key          ECDSA leaf for DNS:localhost and IP:127.0.0.1,
#                              signed by the CA
#   rsa_chain.pem rsa.key      RSA leaf (localhost, 127.0.0.1) followed by
#                              the RSA intermediate CA that signed it (inter
#                              signed by the root)
#   expired.pem expired.key    leaf for localhost/127.0.0.1 valid in 2001 only
#   other.pem other.key        leaf for DNS:other.example only
#   self.pem self.key          self-signed leaf for localhost/127.0.0.1
#   unknown.pem unknown.key    leaf for localhost/127.0.0.1 signed by a CA
#                              that is not ca.pem
#   ipother.pem ipother.key    leaf for DNS:localhost and IP:127.0.0.2 only
#   future.pem future.key      leaf for localhost/127.0.0.1 valid from 2040
#   badsig.pem badsig.key      rsa.pem (and its key) with one bit of the
#                              signature flipped (its issuer: inter.pem)
#   sha1.pem sha1.key          ECDSA leaf for localhost/127.0.0.1 signed by
#                              the CA with ecdsa-with-SHA1
#   rsa1024.pem rsa1024.key    1024-bit RSA leaf for localhost/127.0.0.1
#                              signed by the CA (SHA-256)
#
# Leaves for localhost/127.0.0.1 also name IP ::1.
#
# certs.sh --short DIR OUT SECONDS - a leaf for localhost/127.0.0.1 signed
# by DIR's CA, valid from a minute ago until SECONDS from now, written to
# OUT.pem and OUT.key (OUT: a path). Tests of expiry make it at run time.
#
# Exit 0 when everything is there, 1 otherwise. Without openssl: exit 77
# (or 0 with an empty DIR when a STAMP is given; the tests then skip).
set -eu

SAN='DNS:localhost,IP:127.0.0.1,IP:::1'

# sign_with_ca CADIR CSR OUT START END: sign CSR with CADIR/ca.pem as a
# leaf for $SAN valid from START to END (openssl ca dates), in a scratch
# database next to OUT; `openssl x509` cannot set both dates, `ca` can.
sign_with_ca() {
	db=$3.db
	rm -rf "$db"
	mkdir -p "$db"
	: >"$db/index.txt"
	echo 01 >"$db/serial"
	cat >"$db/ca.cnf" <<EOF
[ca]
default_ca = t
[t]
dir = $db
database = $db/index.txt
serial = $db/serial
new_certs_dir = $db
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = e
[p]
commonName = supplied
[e]
basicConstraints = CA:FALSE
subjectAltName = $SAN
EOF
	openssl ca -batch -config "$db/ca.cnf" -cert "$1/ca.pem" \
		-keyfile "$1/ca.key" -startdate "$4" -enddate "$5" \
		-in "$2" -out "$3" -notext 2>/dev/null
	rm -rf "$db"
}

if [ "${1:-}" = --short ]; then
	[ $# = 4 ] || { echo "usage: certs.sh --short DIR OUT SECONDS" >&2; exit 2; }
	command -v openssl >/dev/null 2>&1 || exit 77
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$3.key" 2>/dev/null
	openssl req -new -key "$3.key" -subj /CN=short -out "$3.csr"
	sign_with_ca "$2" "$3.csr" "$3.pem" \
		"$(date -u -d '-1 minute' +%Y%m%d%H%M%SZ)" \
		"$(date -u -d "+$4 seconds" +%Y%m%d%H%M%SZ)"
	rm -f "$3.csr"
	exit 0
fi

dir=${1:?usage: certs.sh DIR [STAMP]}
stamp=${2:-}
case "$stamp" in /*|'') ;; *) stamp=$PWD/$stamp ;; esac
if ! command -v openssl >/dev/null 2>&1; then
	[ -n "$stamp" ] || exit 77
	mkdir -p "$dir"; : >"$stamp"; exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$1" 2>/dev/null; }
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$1" 2>/dev/null; }

# A CA: name, key file, issuer cert (or "" for self-signed), issuer key.
mkca() {
	openssl req -new -key "$2" -subj "/CN=$1" -out "$1.csr"
	printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$1.ext"
	if [ -z "$3" ]; then
		openssl x509 -req -in "$1.csr" -signkey "$2" -days 3650 \
			-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	else
		openssl x509 -req -in "$1.csr" -CA "$3" -CAkey "$4" \
			-CAcreateserial -days 3650 -extfile "$1.ext" \
			-out "$1.pem" 2>/dev/null
	fi
}

# A leaf: out name, key, SAN, issuer cert, issuer key (issuer "" = self),
# and optionally the signature's digest (default: openssl's, SHA-256).
mkleaf() {
	openssl req -new -key "$2" -subj "/CN=$1" -out "$1.csr"
	printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >"$1.ext"
	if [ -z "$4" ]; then
		openssl x509 -req -in "$1.csr" -signkey "$2" -days 3650 \
			-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	else
		openssl x509 -req -in "$1.csr" -CA "$4" -CAkey "$5" \
			-CAcreateserial -days 3650 -extfile "$1.ext" \
			${6:+-$6} -out "$1.pem" 2>/dev/null
	fi
}

ec ca.key
mkca ca ca.key "" ""

ec leaf.key
mkleaf leaf leaf.key "$SAN" ca.pem ca.key

rsa inter.key
mkca inter inter.key ca.pem ca.key
rsa rsa.key
mkleaf rsa rsa.key "$SAN" inter.pem inter.key
cat rsa.pem inter.pem >rsa_chain.pem

ec other.key
mkleaf other other.key 'DNS:other.example' ca.pem ca.key

ec ipother.key
mkleaf ipother ipother.key 'DNS:localhost,IP:127.0.0.2' ca.pem ca.key

ec self.key
mkleaf self self.key "$SAN" "" ""

ec ca2.key
mkca ca2 ca2.key "" ""
ec unknown.key
mkleaf unknown unknown.key "$SAN" ca2.pem ca2.key

# Expired, and not yet valid.
ec expired.key
openssl req -new -key expired.key -subj /CN=expired -out expired.csr
sign_with_ca . expired.csr expired.pem 20010101000000Z 20011231000000Z
ec future.key
openssl req -new -key future.key -subj /CN=future -out future.csr
sign_with_ca . future.csr future.pem 20400101000000Z 20410101000000Z

# A bad signature: the RSA leaf with the last bit of its signature
# flipped. (Served with inter.pem: a leaf signed by an anchor directly is
# reported as not trusted when its signature fails, not as a bad one.)
openssl x509 -in rsa.pem -outform DER -out rsa.der
python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[-1] ^= 1
open(sys.argv[2], "wb").write(d)' rsa.der badsig.der
openssl x509 -inform DER -in badsig.der -out badsig.pem
cp rsa.key badsig.key

# Weak by today's rules (issue 10): a SHA-1 signature, a 1024-bit RSA key.
ec sha1.key
mkleaf sha1 sha1.key "$SAN" ca.pem ca.key sha1
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 \
	-out rsa1024.key 2>/dev/null
mkleaf rsa1024 rsa1024.key "$SAN" ca.pem ca.key

for f in ca leaf rsa_chain expired future badsig other self unknown ipother \
	sha1 rsa1024; do
	[ -s "$f.pem" ] || { echo "certs.sh: $f.pem missing" >&2; exit 1; }
done
[ -z "$stamp" ] || : >"$stamp"
exit 0
