"""SVG icons of the GUI (drawn for cellqc; shape + colour + word for verdicts)."""
