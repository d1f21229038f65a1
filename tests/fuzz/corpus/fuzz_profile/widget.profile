; Sample provisioning profile for the simulated "widget" board.
; Relative paths are resolved against this file's directory when the
; profile is added; the stored (canonical) copy names absolute paths.

[product]
name = widget
usb = 1209:0001

[firmware]
image = widget-fw.bin
; the output of `sha256sum widget-fw.bin`: this sample's all-zero value is accepted by
; `station profile add`, but `station run` refuses to start until it matches the image
sha256 = 0000000000000000000000000000000000000000000000000000000000000000

[key]
type = ec-p256

[certificate]
validity_days = 3650
san = URI:urn:example:widget:{unique_id}

[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
token = station-ca
ca_key = ca-p256
ca_cert = ca.pem
audit_key = audit-p256
; the PIN itself never appears here
pin_env = STATION_HSM_PIN

[attestation]
manufacturer_ca = mfr-ca.pem

[policy]
max_failures_in_row = 3
