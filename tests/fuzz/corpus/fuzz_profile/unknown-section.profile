[product]
name = x
[bogus]
