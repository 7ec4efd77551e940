"""LoRa link to dispensing units in flats without RS485 cabling: our own frame
format with AES-CMAC and AES-CTR, duty-cycle accounting, radio backends."""
