[product]
name = x
usb = 1209:0001
