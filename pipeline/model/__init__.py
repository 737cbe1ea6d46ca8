"""The CNN: its architecture and loading (network), its training (training, which also holds the train params),
the unfamiliarity score (unfamiliarity) fitted on the model's views of an image (views), and predictions as tables
(prediction).

Start with network.py: the model takes raw 0-255 images and scales them itself.
"""
