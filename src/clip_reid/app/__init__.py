"""A local search page over the latest trained model and its gallery: query by image or by a
description (``clip-reid-app`` or ``python -m clip_reid.app``)."""
