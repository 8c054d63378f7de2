"""User code at the three plug points: a model (`model.arch`), data (`data.name`) and a training
loop (`train.loop`) given by import path. The built-in architectures, datasets and loop are the
default values of the same keys; everything downstream sees the same models, splits and records."""
