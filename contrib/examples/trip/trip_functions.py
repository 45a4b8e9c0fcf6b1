"""Function Compute style handlers for trip-saga.yaml: `handler(event, context)`."""

import json
import time

ATTEMPTS = {"flight": 0}


class FlightSystemBusy(Exception):
    """The airline asks to try again later."""


class HotelSoldOut(Exception):
    """No room left."""


class HotelSystemDown(Exception):
    """The hotel's system does not answer."""


def book_flight(event, context):
    data = json.loads(event)
    ATTEMPTS["flight"] += 1
    if ATTEMPTS["flight"] <= data.get("flightBusy", 0):
        raise FlightSystemBusy(f"attempt {ATTEMPTS['flight']}: the airline is busy")
    return {"flight": "FL-1", "flightAttempts": ATTEMPTS["flight"]}


def book_hotel(event, context):
    mode = json.loads(event).get("hotel", "ok")
    if mode == "soldout":
        raise HotelSoldOut("no room on those dates")
    if mode == "down":
        raise HotelSystemDown("the hotel's system does not answer")
    if mode == "slow":
        time.sleep(10)
    return json.dumps({"hotel": "HT-1"})


def cancel_flight(event, context):
    return {"cancelled": json.loads(event).get("flight")}
