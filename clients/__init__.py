"""Demo relying parties for `make run`: small Flask apps using authlib's OpenID Connect client."""
