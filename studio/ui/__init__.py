"""The Gradio UI: the only package that imports gradio. ``studio.ui.app.build_app(studio)`` builds the app."""
