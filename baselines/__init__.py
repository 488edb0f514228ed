"""Built-in predictors. Each module registers its classes when the harness first asks for them."""
