"""Entry points that train the networks shipped with ttblur (BME, ID-Blau, reference model)."""
