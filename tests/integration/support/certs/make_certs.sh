#!/bin/sh
# Regenerates the TLS test certificates of tst_it_upstreamfailures (openssl CLI, OpenSSL 3.0 or later).
# The generated files are committed, so the tests need no openssl at run time. Run from anywhere:
#   tests/integration/support/certs/make_certs.sh
#
#   ca.pem               test CA ("KeyRelay Test CA"); its key is thrown away
#   server.key           the one EC P-256 key of every server certificate below
#   server.pem           127.0.0.1 + localhost (subjectAltName IP and DNS), signed by the CA, ~100 years
#   expired.pem          127.0.0.1 + localhost, signed by the CA, valid 2020-01-01 .. 2021-01-01 (UTC)
#   wronghost.pem        wrong.example only, signed by the CA, ~100 years
#   selfsigned.pem       127.0.0.1 + localhost, self-signed, ~100 years
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=36500

cd "$work"
# Only [ server_ext ] uses it; openssl reads the whole file for every command.
SAN=DNS:unused
export SAN
touch index.txt
echo 1000 > serial
cat > ca.cnf <<CNF
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
certificate = $work/ca.pem
private_key = $work/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = \${ENV::SAN}

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused
CNF

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA.
ec ca.key
openssl req -config ca.cnf -new -x509 -key ca.key -subj "/CN=KeyRelay Test CA" \
    -days $days -extensions ca_ext -out ca.pem

# The server key, shared by every server certificate.
ec server.key

# sign NAME CN SAN [openssl ca date options...]
sign() {
    name=$1 cn=$2 san=$3
    shift 3
    openssl req -config ca.cnf -new -key server.key -subj "/CN=$cn" -out "$name.csr"
    SAN=$san openssl ca -config ca.cnf -batch -notext -extensions server_ext -in "$name.csr" \
        -out "$name.pem" "$@" 2>/dev/null
}

sign server 127.0.0.1 "IP:127.0.0.1, DNS:localhost" -days $days
sign expired 127.0.0.1 "IP:127.0.0.1, DNS:localhost" -startdate 20200101000000Z -enddate 20210101000000Z
sign wronghost wrong.example "DNS:wrong.example" -days $days

# Self-signed: the same names, no CA.
openssl req -config ca.cnf -new -x509 -key server.key -subj "/CN=127.0.0.1" -days $days \
    -addext "subjectAltName = IP:127.0.0.1, DNS:localhost" -addext "basicConstraints = critical, CA:FALSE" \
    -out selfsigned.pem

cp ca.pem server.key server.pem expired.pem wronghost.pem selfsigned.pem "$here/"
for cert in ca server expired wronghost selfsigned; do
    printf '%-12s ' "$cert"
    openssl x509 -in "$here/$cert.pem" -noout -subject -enddate -ext subjectAltName 2>/dev/null | tr '\n' ' '
    echo
done
