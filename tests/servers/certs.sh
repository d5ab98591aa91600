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
#
# Exit 0 when everything is there, 1 otherwise. Without openssl: exit 77
# (or 0 with an empty DIR when a STAMP is given; the tests then skip).
set -eu

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

# A leaf: out name, key, SAN, issuer cert, issuer key (issuer "" = self).
mkleaf() {
	openssl req -new -key "$2" -subj "/CN=$1" -out "$1.csr"
	printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >"$1.ext"
	if [ -z "$4" ]; then
		openssl x509 -req -in "$1.csr" -signkey "$2" -days 3650 \
			-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	else
		openssl x509 -req -in "$1.csr" -CA "$4" -CAkey "$5" \
			-CAcreateserial -days 3650 -extfile "$1.ext" \
			-out "$1.pem" 2>/dev/null
	fi
}

SAN='DNS:localhost,IP:127.0.0.1'

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

# Expired: `openssl x509` cannot back-date, `openssl ca` can.
ec expired.key
openssl req -new -key expired.key -subj /CN=expired -out expired.csr
mkdir -p db
: >db/index.txt
echo 01 >db/serial
cat >ca.cnf <<EOF
[ca]
default_ca = t
[t]
dir = .
database = db/index.txt
serial = db/serial
new_certs_dir = db
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
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key \
	-startdate 20010101000000Z -enddate 20011231000000Z \
	-in expired.csr -out expired.pem -notext 2>/dev/null

for f in ca leaf rsa_chain expired other self unknown ipother; do
	[ -s "$f.pem" ] || { echo "certs.sh: $f.pem missing" >&2; exit 1; }
done
[ -z "$stamp" ] || : >"$stamp"
exit 0
