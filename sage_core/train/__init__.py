"""Training: SAM priors, losses, the distillation config, data and the bi-level distiller."""
