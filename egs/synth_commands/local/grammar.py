"""The command grammar of the synth_commands corpus: four families of everyday voice commands.

Each intent has several phrasings; the last phrasing of every list is held out of training and
spoken only in the zero-shot test set. ``sample(rng, heldout)`` returns ``(text, intent, family)``.
"""
from __future__ import annotations

import random

LOCATIONS = {"kitchen": ["kitchen"], "bedroom": ["bedroom"], "washroom": ["washroom", "bathroom"], "none": [""]}
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

# Smart home, after Fluent Speech Commands: intent = action_object_location.
SWITCHABLE = {"lights": ["lights", "light"], "lamp": ["lamp"], "music": ["music"], "heat": ["heating", "heat"]}
ON_PHRASES = ["turn on the {obj}{loc}", "switch on the {obj}{loc}", "turn the {obj} on{loc}", "{obj} on{loc}",
              "could you turn on the {obj}{loc}", "start the {obj}{loc}"]
OFF_PHRASES = ["turn off the {obj}{loc}", "switch off the {obj}{loc}", "turn the {obj} off{loc}", "{obj} off{loc}",
               "could you turn off the {obj}{loc}", "stop the {obj}{loc}"]
LEVELS = {"volume": ["volume", "sound"], "heat": ["heat", "temperature"]}
UP_PHRASES = ["increase the {obj}{loc}", "turn up the {obj}{loc}", "raise the {obj}{loc}", "{obj} up{loc}",
              "make it louder" , "more {obj}{loc}"]
DOWN_PHRASES = ["decrease the {obj}{loc}", "turn down the {obj}{loc}", "lower the {obj}{loc}", "{obj} down{loc}",
                "make it quieter", "less {obj}{loc}"]
FETCHABLE = ["newspaper", "juice", "socks", "shoes"]
BRING_PHRASES = ["bring me the {obj}", "bring me my {obj}", "fetch my {obj}", "get me the {obj}", "i need my {obj}",
                 "go get the {obj}"]
LANGUAGES = ["chinese", "korean", "english", "german"]
LANGUAGE_PHRASES = ["change the language to {obj}", "switch the language to {obj}", "set the language to {obj}",
                    "use {obj}", "i want {obj}", "language {obj}"]

# Robot navigation: intent = nav_<direction>; distances are slots, not part of the intent.
NAV = {
    "forward": ["move forward {n} {unit}", "go forward {n} {unit}", "go straight {n} {unit}", "drive ahead {n} {unit}"],
    "backward": ["move back {n} {unit}", "go backward {n} {unit}", "reverse {n} {unit}", "back up {n} {unit}"],
    "left": ["turn left", "turn left {deg} degrees", "go left", "rotate left {deg} degrees"],
    "right": ["turn right", "turn right {deg} degrees", "go right", "rotate right {deg} degrees"],
    "stop": ["stop", "stop moving", "halt", "stand still"],
    "around": ["turn around", "turn back", "face the other way", "do a u turn"],
}
UNITS = ["meters", "steps", "feet"]
DEGREES = ["thirty", "forty five", "ninety", "one hundred eighty"]

MEDIA = {
    "next": ["play the next song", "next track", "skip this song", "skip ahead"],
    "previous": ["play the previous song", "previous track", "go back one song", "play the last song again"],
    "pause": ["pause the music", "pause", "pause playback", "hold the music"],
    "resume": ["resume the music", "resume playback", "continue playing", "keep playing"],
    "shuffle": ["shuffle my playlist", "shuffle the songs", "play in random order", "mix up the playlist"],
    "play_jazz": ["play some jazz", "put on jazz music", "i want to hear jazz", "play jazz"],
    "play_rock": ["play some rock", "put on rock music", "i want to hear rock", "play rock"],
}

DIGIT_PHRASES = {"call": ["call {d}", "dial {d}", "phone {d}"], "code": ["my code is {d}", "the pin is {d}", "enter {d}"],
                 "plain": ["{d}"]}


def _pick(rng: random.Random, phrasings: list[str], heldout: bool) -> str:
    """A training phrasing, or with ``heldout`` the list's last one, which training never hears."""
    return phrasings[-1] if heldout else rng.choice(phrasings[:-1])


def _smart_home(rng: random.Random, heldout: bool):
    kind = rng.choice(["on", "off", "up", "down", "bring", "language"])
    loc_key = rng.choice(list(LOCATIONS))
    loc_word = rng.choice(LOCATIONS[loc_key])
    loc = f" in the {loc_word}" if loc_word else ""
    if kind in ("on", "off"):
        obj = rng.choice(list(SWITCHABLE))
        phrase = _pick(rng, ON_PHRASES if kind == "on" else OFF_PHRASES, heldout)
        action = "activate" if kind == "on" else "deactivate"
    elif kind in ("up", "down"):
        obj = rng.choice(list(LEVELS))
        phrase = _pick(rng, UP_PHRASES if kind == "up" else DOWN_PHRASES, heldout)
        if "{obj}" not in phrase:
            obj, loc_key, loc = "volume", "none", ""
        action = "increase" if kind == "up" else "decrease"
    elif kind == "bring":
        obj, action, loc_key, loc = rng.choice(FETCHABLE), "bring", "none", ""
        phrase = _pick(rng, BRING_PHRASES, heldout)
    else:
        obj, action, loc_key, loc = rng.choice(LANGUAGES), "change_language", "none", ""
        phrase = _pick(rng, LANGUAGE_PHRASES, heldout)
    words = (SWITCHABLE.get(obj) or LEVELS.get(obj) or [obj]) if kind not in ("bring", "language") else [obj]
    text = phrase.format(obj=rng.choice(words), loc=loc)
    return text, f"{action}_{obj}_{loc_key}"


def _navigation(rng: random.Random, heldout: bool):
    direction = rng.choice(list(NAV))
    phrase = _pick(rng, NAV[direction], heldout)
    text = phrase.format(n=rng.choice(NUMBERS), unit=rng.choice(UNITS), deg=rng.choice(DEGREES))
    return text, f"nav_{direction}"


def _media(rng: random.Random, heldout: bool):
    action = rng.choice(list(MEDIA))
    return _pick(rng, MEDIA[action], heldout), f"media_{action}"


def _digits(rng: random.Random, heldout: bool):
    kind = rng.choice([k for k, v in DIGIT_PHRASES.items() if len(v) > 1]) if heldout else rng.choice(list(DIGIT_PHRASES))
    digits = " ".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 6)))
    phrasings = DIGIT_PHRASES[kind]
    phrase = _pick(rng, phrasings, heldout) if len(phrasings) > 1 else phrasings[0]
    return phrase.format(d=digits), f"digits_{kind}"


FAMILIES = {"smart_home": _smart_home, "navigation": _navigation, "media": _media, "digits": _digits}
WEIGHTS = {"smart_home": 0.45, "navigation": 0.2, "media": 0.15, "digits": 0.2}


def sample(rng: random.Random, heldout: bool = False) -> tuple[str, str, str]:
    family = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    text, intent = FAMILIES[family](rng, heldout)
    return " ".join(text.split()), intent, family
