"""The ``nn.Module`` networks used by the stages (BME, ID-Blau UNet, reference deblurrer)."""
