terraform {
  # A pure module (no provider): it renders cloud-init with templatefile/yamlencode.
  required_version = ">= 1.6.0, < 2.0.0"
}
