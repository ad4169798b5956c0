"""ControlNet: model files (models.py, load.py), preprocessors, units in the denoising loop.

Engine-side: nothing here imports gradio or fastapi except ui.py and api.py.
"""
