#!/bin/sh
# Makes the certificates and keys the examples use. They are committed
# together with this script; run it again only to change them.
#
#   mail.example.com.pem / .key     EC P-256, SAN mail.example.com, valid for 100 years
#   domino.example.net.pem / .key   EC P-256, SAN domino.example.net, valid for 100 years
#   backend-ca.pem                  the CA that signs the mailbox servers' certificates
#                                   in exchange-frontend.mailgw (100 years; its key is
#                                   thrown away: the examples only need the certificate)
#
# These are demo certificates for the example host names: never use them
# for a real gateway.
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# leaf NAME: a 100-year self-signed certificate for the host NAME.
leaf() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 36500 \
        -addext "subjectAltName=DNS:$1" -out "$1.pem"
}

leaf mail.example.com
leaf domino.example.net

openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -subj "/CN=Example Mailbox Servers CA" -days 36500 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out backend-ca.pem
