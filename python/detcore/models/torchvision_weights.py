def load_torchvision_weights(*a, **k):
    raise NotImplementedError
