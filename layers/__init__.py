"""The Keras layers the zoo's models are built of: the encoders that turn frames into a video
representation (`recurrent`: stacked and hierarchical LSTMs; `bag_of_frames`: DBoF's pooling;
`vlad`: NetVLAD, NeXtVLAD and context gating) and the output layers (`classifiers`: logistic
and mixture of experts). The models themselves are in the zoo's modules (model_zoo.py).
"""
