"""The artifacts stages hand each other, as their readers see them: transcripts,
glossaries, speech regions, normalised text. A stage that reads another's output imports its
format from here, never the producing stage.
"""
