"""The blind arena: two models answer one prompt, the judge votes before the names are shown, and the votes become
win rates, a ranking and training data (preference pairs, SFT rows). No gradio here: the Chat tab's arena panel and
`studio arena` are thin layers over these modules."""
