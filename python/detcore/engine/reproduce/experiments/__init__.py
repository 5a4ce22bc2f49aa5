"""One module per experiment, named as in ``detcore.engine.reproduce.base.ORDER``."""
