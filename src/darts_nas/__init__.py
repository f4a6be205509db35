"""darts-nas: differentiable architecture search."""
