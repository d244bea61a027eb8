# Certificates for the tests of the HTTPS API (sourced after lib.sh, not run): openssl makes
# them in $C (set by the caller, under the test's $TMP), EC P-256, valid from now for 2 days.

# key_csr NAME: NAME.key and NAME.csr (CN=NAME)
key_csr() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
        -subj "/CN=$1" -out "$C/$1.csr" 2>/dev/null
}
# ca NAME: a self-signed CA
ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
        -out "$C/$1.crt" -subj "/CN=$1" -days 2 2>/dev/null
}
# sign NAME CA EXTFILE: NAME.crt
sign() {
    openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.crt" -CAkey "$C/$2.key" -CAcreateserial \
        -out "$C/$1.crt" -days 2 -extfile "$3" 2>/dev/null
}
# server_client_certs: ca.crt, server.crt/key (for IP 127.0.0.1) and client.crt/key, both
# signed by ca; 1 when openssl failed
server_client_certs() {
    mkdir -p "$C"
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$C/server.ext"
    printf 'extendedKeyUsage=clientAuth\n' >"$C/client.ext"
    ca ca && key_csr server && key_csr client && sign server ca "$C/server.ext" &&
        sign client ca "$C/client.ext"
}
