"""hekta-redcap: the data side of a randomized trial on REDCap, from instrument definitions to
analyst exports. See README.md for the tour and docs/ for the formats."""

__version__ = "0.1.0"
LANGUAGES = ("nb", "en")  # the definitions' label languages: Norwegian (bokmål) and English
