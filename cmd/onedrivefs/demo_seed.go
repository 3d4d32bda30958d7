package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// The demo's sample tree: a few documents, a few photos, a folder of many
// small notes and one large (sparse) video. Everything is generated, the
// same on every machine.

// demoDocuments are the text files of Documents/.
var demoDocuments = []struct{ path, text string }{
	{"Documents/Welcome.md", `# Welcome to the onedrivefs demo

This drive is a fake OneDrive running inside 'onedrivefs demo'. Everything
you do here is kept for the next run (start over with --fresh).

Copies made inside the mount are done by OneDrive itself:

    cp Videos/holiday.mkv Videos/holiday-copy.mkv
    setfattr -n user.onedrive.copy -v Photos-backup Photos

Neither downloads nor uploads a byte of the copied files.
`},
	{"Documents/Shopping list.txt", "eggs\nflour\nmilk (oat)\nlemons\nbasil\ncoffee beans\nbin bags\n"},
	{"Documents/Meeting notes 2024-03-14.md", `# Team sync, 14 March 2024

- Release 2.3 slips one week: the migration script needs another review.
- Nadia takes over the on-call rota from April.
- Offsite: the second week of May; Jonas collects the dates that do not work.

Actions: Jonas (dates), Nadia (rota), everyone (review the migration).
`},
	{"Documents/Budget 2024.csv", "month,rent,groceries,transport,savings\n" +
		"January,950,412.30,86.00,300\nFebruary,950,388.75,86.00,300\nMarch,950,430.10,92.50,250\n" +
		"April,950,401.95,86.00,300\nMay,950,455.20,120.00,200\nJune,950,398.40,86.00,350\n"},
	{"Documents/Recipes/Pancakes.md", `# Pancakes (8)

- 250 g flour, 2 eggs, 500 ml milk, a pinch of salt, 1 tbsp sugar
- Whisk, rest 30 minutes, cook in a hot buttered pan, 1 minute a side.
`},
	{"Documents/Recipes/Lemon pasta.md", `# Lemon pasta (2)

- 200 g spaghetti, 1 lemon (zest and juice), 50 g parmesan, butter, pepper
- Toss the drained pasta with butter, zest, juice and cheese; loosen with pasta water.
`},
}

// demoPhoto is a generated landscape: a sky gradient, a sun or moon, and a
// skyline (hills or buildings) over the ground.
type demoPhoto struct {
	name                string
	skyTop, skyBottom   color.RGBA
	disc                color.RGBA
	discX, discY, discR float64 // fractions of the width/height
	ground              color.RGBA
	city                bool
	seed                uint64
}

var demoPhotos = []demoPhoto{
	{"Sunset at the lake.png", rgb(38, 45, 110), rgb(250, 140, 70), rgb(255, 210, 120), 0.7, 0.62, 0.08, rgb(25, 50, 70), false, 1},
	{"Mountain trail.png", rgb(90, 150, 230), rgb(200, 225, 250), rgb(255, 250, 220), 0.2, 0.18, 0.06, rgb(60, 90, 50), false, 2},
	{"City lights.png", rgb(8, 10, 35), rgb(45, 40, 90), rgb(235, 235, 220), 0.82, 0.15, 0.05, rgb(20, 20, 28), true, 3},
	{"Morning fog.png", rgb(170, 180, 190), rgb(230, 228, 220), rgb(250, 245, 230), 0.5, 0.35, 0.1, rgb(110, 125, 115), false, 4},
}

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{r, g, b, 255} }

func lerp(a, b uint8, t float64) uint8 { return uint8(float64(a) + (float64(b)-float64(a))*t) }

// render draws p as a w×h PNG.
func (p demoPhoto) render(w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(p.seed, 42))
	// The skyline height at every column.
	sky := make([]int, w)
	if p.city {
		for x := range sky {
			sky[x] = int(float64(h) * 0.85) // the street between the blocks
		}
		for x := 0; x < w; {
			bw := 20 + rng.IntN(50)
			top := int(float64(h) * (0.45 + 0.3*rng.Float64()))
			for i := x; i < x+bw && i < w; i++ {
				sky[i] = top
			}
			x += bw + rng.IntN(6)
		}
	} else {
		a1, a2, a3 := rng.Float64()*6, rng.Float64()*6, rng.Float64()*6
		for x := range sky {
			f := float64(x) / float64(w)
			v := 0.08*math.Sin(f*7+a1) + 0.05*math.Sin(f*17+a2) + 0.02*math.Sin(f*41+a3)
			sky[x] = int(float64(h) * (0.62 + v))
		}
	}
	cx, cy, r := p.discX*float64(w), p.discY*float64(h), p.discR*float64(w)
	for y := 0; y < h; y++ {
		t := float64(y) / float64(h)
		bg := color.RGBA{lerp(p.skyTop.R, p.skyBottom.R, t), lerp(p.skyTop.G, p.skyBottom.G, t), lerp(p.skyTop.B, p.skyBottom.B, t), 255}
		for x := 0; x < w; x++ {
			c := bg
			if dx, dy := float64(x)-cx, float64(y)-cy; dx*dx+dy*dy < r*r {
				c = p.disc
			}
			if y >= sky[x] {
				c = p.ground
				if p.city && y < h*85/100 && x%9 < 4 && y%14 < 6 && ((x/9)*73856093^(y/14)*19349663)%7 < 2 {
					c = rgb(250, 220, 130) // a lit window
				}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// demoJournalNotes is the size of Archive/Journal.
const demoJournalNotes = 500

var (
	journalWeather = []string{"rain all day", "sunny and cold", "grey, a little drizzle", "warm, windy", "fog in the morning, then clear", "hot, a thunderstorm in the evening"}
	journalDid     = []string{"worked on the quarterly report", "long walk by the river", "fixed the bike's back brake", "read two chapters", "called Mum", "baked bread", "sorted the photos from the trip", "went to the market", "cleaned the flat", "tried a new running route"}
	journalThought = []string{"Should sleep earlier.", "Good day overall.", "Need to book the train tickets.", "Remember to water the plants.", "Too much coffee.", "Felt productive.", "Want to learn the guitar again."}
)

// seedDemo fills an empty fake drive with the sample tree.
func seedDemo(fake *graphtest.Server) error {
	now := time.Now().UTC().Truncate(time.Second)
	for i, d := range demoDocuments {
		if _, err := fake.PutFile(d.path, []byte(d.text), now.Add(-time.Duration(30-i)*24*time.Hour)); err != nil {
			return err
		}
	}
	for i, p := range demoPhotos {
		b, err := p.render(960, 640)
		if err != nil {
			return err
		}
		if _, err := fake.PutFile("Photos/"+p.name, b, now.Add(-time.Duration(200-20*i)*24*time.Hour)); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	first := time.Date(2023, 1, 1, 21, 30, 0, 0, time.UTC)
	for i := range demoJournalNotes {
		day := first.AddDate(0, 0, i)
		var b strings.Builder
		fmt.Fprintf(&b, "# %s\n\nWeather: %s.\n\n", day.Format("Monday 2 January 2006"), journalWeather[rng.IntN(len(journalWeather))])
		fmt.Fprintf(&b, "- %s\n- %s\n\n%s\n", journalDid[rng.IntN(len(journalDid))], journalDid[rng.IntN(len(journalDid))],
			journalThought[rng.IntN(len(journalThought))])
		if _, err := fake.PutFile("Archive/Journal/"+day.Format("2006-01-02")+".md", []byte(b.String()), day); err != nil {
			return err
		}
	}
	_, err := fake.SparseFile(demoVideoPath, demoVideoSize, []byte("\nend of holiday.mkv (a sparse sample file)\n"))
	return err
}
