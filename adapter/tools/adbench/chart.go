package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// chart draws two panels of grouped bars per format and pipeline: wall
// MiB/s, and MiB per CPU-second.
func chart(path string, rs []result) error {
	const w, ph = 900, 400
	img := image.NewRGBA(image.Rect(0, 0, w, 2*ph))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	panel(img, 0, rs, "throughput, MiB/s of input (wall clock; higher is better)", result.mibps)
	panel(img, ph, rs, "efficiency, MiB of input per CPU-second (higher is better)", result.mibPerCPU)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}

func panel(img *image.RGBA, y0 int, rs []result, title string, val func(result) float64) {
	const w, h, top, bottom, left = 900, 400, 50, 90, 60
	colors := []color.RGBA{{0x4c, 0x72, 0xb0, 255}, {0x55, 0xa8, 0x68, 255}, {0xc4, 0x4e, 0x52, 255}}
	maxV := 0.0
	for _, r := range rs {
		if v := val(r); v > maxV {
			maxV = v
		}
	}
	maxV *= 1.15
	text := func(x, y int, s string) {
		d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y0+y)}
		d.DrawString(strings.ReplaceAll(s, "→", "->"))
	}
	rect := func(x0, ya, x1, yb int, c color.Color) {
		draw.Draw(img, image.Rect(x0, y0+ya, x1, y0+yb), image.NewUniform(c), image.Point{}, draw.Src)
	}
	text(left, 25, title)
	plotH := h - top - bottom
	// axis
	rect(left, top, left+1, top+plotH, color.Black)
	rect(left, top+plotH, w-20, top+plotH+1, color.Black)
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		y := top + plotH - int(float64(plotH)*float64(i)/4)
		text(5, y+4, fmt.Sprintf("%.0f", v))
	}
	groups := len(rs) / 3
	gw := (w - left - 40) / groups
	bw := gw / 4
	for g := 0; g < groups; g++ {
		x0 := left + 20 + g*gw
		for k := 0; k < 3; k++ {
			r := rs[g*3+k]
			bh := int(float64(plotH) * val(r) / maxV)
			x := x0 + k*bw
			rect(x, top+plotH-bh, x+bw-6, top+plotH, colors[k])
			text(x, top+plotH-bh-4, fmt.Sprintf("%.1f", val(r)))
		}
		text(x0+bw/2, top+plotH+18, rs[g*3].format+" lines")
	}
	for k := 0; k < 3 && k < len(rs); k++ {
		y := h - 55 + k*16
		rect(left, y-10, left+12, y, colors[k])
		text(left+18, y, rs[k].name)
	}
}
