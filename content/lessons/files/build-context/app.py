"""A tiny report app. It needs its code and README to run, not the data you analyse on your laptop."""
import pathlib

here = pathlib.Path(__file__).parent
print("files in the image:", sorted(p.name for p in here.iterdir()))
